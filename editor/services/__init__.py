"""Business logic that writes. Views, tasks and admin call these; they never write models directly."""
