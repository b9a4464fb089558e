"""Clients for outside services. Each maps the outside world's answers to a few typed outcomes."""
