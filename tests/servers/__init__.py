"""The site under the real servers the project runs: `make run`'s runserver (Procfile.dev) and gunicorn
(docker/entrypoint.sh web), each on its own migrated SQLite file database."""
