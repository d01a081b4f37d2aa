"""Builder of the bundled training triples and offline evaluation suite (`poolattn data build`).

Only the builder lives here; reading the artifacts needs the standard library alone. Builder-only
dependencies are in the `[build-data]` extra.
"""

from __future__ import annotations

from poolattn.databuild.build import BuildError, build, check, default_out_dir, default_work_dir
from poolattn.databuild.fetch import FetchError

__all__ = ["BuildError", "FetchError", "build", "check", "default_out_dir", "default_work_dir"]
