"""Read a cluster file into a `Cluster`, checking it the way the API server would.

A cluster file is what `kubectl get -o yaml` (or `-o json`) prints: a `kind: List`
or a stream of YAML documents holding Nodes, Pods, Services and EndpointSlices,
plus a KubeProxyConfiguration and kubehop's own CNIConfig and ExternalClient.
Objects of other kinds and fields kubehop has no use for are skipped, so a dump
of a real cluster loads as it is. One file, several files or a directory of
them (`kubectl cluster-info dump`) are read and checked as one cluster.

Every mistake is one `ClusterFileError` line, `file:line: Kind ns/name: field: reason`.
Things a real cluster may legitimately contain but that change what the network
does become `Cluster.warnings`, in the same shape.

Deriving EndpointSlices from selectors is the EndpointSlice controller's job and
lives in `sim.cluster.endpointslices`; this package only reads and checks.

The stages, each a module: `files` (paths to text), `documents` (text to
YAML/JSON documents, and back to line numbers), `objects` (documents to
objects by kind), `fields` (one field's checks), then one module per kind
(`hosts`, `pods`, `services`, `slices`, `config`), `checks` across the whole
cluster, and `messages` that word every problem. `load` runs them in order.
A JSON file (what `kubectl get -o json` and `kubehop gen` write) is read by
`stream` item by item instead, each object checked as it comes, so a dump of
hundreds of megabytes never lives in memory as one tree.
"""

from sim.readers.cluster.load import (
    Progress,
    load_cluster_file,
    load_cluster_files,
    load_dump,
    parse_cluster,
    parse_clusters,
)

__all__ = [
    "Progress",
    "load_cluster_file",
    "load_cluster_files",
    "load_dump",
    "parse_cluster",
    "parse_clusters",
]
