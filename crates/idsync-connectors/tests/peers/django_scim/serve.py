"""Create the database, then serve django-scim2 on 127.0.0.1:PEER_PORT until killed."""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "settings")

from django.core.management import execute_from_command_line  # noqa: E402

port = os.environ.get("PEER_PORT", "8000")
execute_from_command_line(["serve", "migrate", "--run-syncdb", "--verbosity", "0"])
execute_from_command_line(["serve", "runserver", "--noreload", "--nothreading", f"127.0.0.1:{port}"])
