"""Linear probes on a trained run's frozen representation (`duvae classify`; reference-spec §6)."""

from duvae_cli.probe.classify import ClassifyOptions, ProbeResult, classify_run
from duvae_cli.probe.linear import ProbeSettings, fit_probe
from duvae_cli.probe.outputs import result_json, write_outputs

__all__ = ["ClassifyOptions", "ProbeResult", "ProbeSettings", "classify_run", "fit_probe", "result_json",
           "write_outputs"]
