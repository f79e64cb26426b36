"""Operator extra links: buttons on a task instance's page in Airflow's UI."""
