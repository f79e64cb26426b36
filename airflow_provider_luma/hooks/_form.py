"""
How the Luma connection looks in Airflow's connection form: which fields show, their labels, and the
extras as form fields (the FAB widgets of Airflow < 3.2, the declarative ``conn-fields`` of later ones).
"""

from __future__ import annotations

from typing import Any

from airflow_provider_luma.hooks._clients import DEFAULT_BASE_URL
from airflow_provider_luma.hooks._connection import EXTRAS

#: Labels and help for the connection extras, shared by the form widgets and ``conn_fields``.
_EXTRA_FIELDS: dict[str, tuple[str, str]] = {
    "timeout": ("Read timeout (s)", "Seconds to wait for the API to answer a request."),
    "connect_timeout": ("Connect timeout (s)", "Seconds to wait for a connection to open."),
    "max_retries": ("Max retries", "Retries of a transient failure (POSTs only when nothing was queued)."),
    "max_rate_limit_wait": (
        "Max rate-limit wait (s)",
        "Total seconds one call may wait on 429 Retry-After before failing with a rate-limit error.",
    ),
}


def ui_field_behaviour() -> dict[str, Any]:
    """Hide the fields the API does not use; name the others for what they hold."""
    return {
        "hidden_fields": ["schema", "login", "port"],
        "relabeling": {"password": "API key", "host": "Base URL"},
        "placeholders": {"host": DEFAULT_BASE_URL, "password": "luma-api-..."},
    }


def connection_form_widgets() -> dict[str, Any]:
    """The extras as form fields (Airflow < 3.2; later ones read :func:`conn_fields` via provider info)."""
    from flask_appbuilder.fieldwidgets import BS3TextFieldWidget
    from flask_babel import lazy_gettext
    from wtforms import IntegerField, StringField
    from wtforms.validators import NumberRange, Optional

    widgets: dict[str, Any] = {}
    for name, (label, description) in _EXTRA_FIELDS.items():
        field_class = IntegerField if EXTRAS[name][0] is int else StringField
        widgets[name] = field_class(
            lazy_gettext(label),
            description=description,
            validators=[Optional(), NumberRange(min=0)] if field_class is IntegerField else [Optional()],
            widget=BS3TextFieldWidget(),
        )
    return widgets


def conn_fields() -> dict[str, Any]:
    """The extras in the declarative ``conn-fields`` form of provider info (Airflow >= 3.2)."""
    return {
        name: {
            "label": label,
            "description": description,
            "schema": {
                "type": ["integer" if EXTRAS[name][0] is int else "number", "null"],
                "minimum": 0,
                "default": EXTRAS[name][1],
            },
        }
        for name, (label, description) in _EXTRA_FIELDS.items()
    }
