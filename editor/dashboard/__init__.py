"""The operators' usage dashboard: a Django app of its own (label `dashboard`) with its daily rollup."""
