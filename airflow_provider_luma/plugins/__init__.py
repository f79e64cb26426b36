"""The provider's Airflow plugin: the Luma view of stored images inside Airflow's UI."""
