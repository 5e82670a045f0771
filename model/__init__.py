"""kubehop's data: frozen pydantic models of a cluster, packets, rules and traces.

This package imports neither `sim` nor `tui`; it holds data and the
Kubernetes validation rules, nothing that simulates.
"""
