"""The run store: the only code that reads or writes a run folder.

A run folder holds ``run.sqlite`` (plan, status, provenance, image index; WAL mode) and the
PNG files of every cascade stage under ``images/``. Other stages talk to it through
:class:`RunStore` and get pandas tables back; none of them parses the folder itself.
"""

from imagen_audit.store.records import ImageRecord, PlannedSample, SampleResult, StageSpec
from imagen_audit.store.run_store import RunStore

__all__ = ["ImageRecord", "PlannedSample", "RunStore", "SampleResult", "StageSpec"]
