"""kubehop's simulation core: kube-proxy's rules, netfilter, routing, the bridge, the CNI.

Runs headless: it never imports `tui`, Textual or Rich.
"""
