"""Per-domain benchmark reports that several calls fill in turn."""

import json
import os


def other_domains(report, domains):
    """{domain: results} already in the JSON ``report`` for domains not in ``domains``.

    A benchmark run for some domains rewrites their entries and keeps the
    others; {} if the report does not exist yet.
    """
    if not os.path.isfile(report):
        return {}
    with open(report, encoding="utf-8") as f:
        return {d: r for d, r in json.load(f).items() if d not in domains}
