"""Parse `iptables-save` text (iptables-legacy and iptables-nft) into a `Ruleset`.

The modules, from the top: `ruleset` reads the text line by line (`lazy` for
kubehop's own rendering), `tables` declares chains and checks jumps for loops,
`rules` reads one `-A` line, `matches` and `targets` its `-m` and `-j` parts,
`options` gathers their words, `values` reads the values, `words` splits a
line as a shell would.
"""

from sim.readers.iptables_save.ruleset import parse_iptables_save
from sim.readers.iptables_save.tables import BUILTIN_CHAINS

__all__ = ["BUILTIN_CHAINS", "parse_iptables_save"]
