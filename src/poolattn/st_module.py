"""The old import path of `PoolattnModule` (now poolattn.model.st_module), kept for folders already exported.

A sentence-transformers export records its module's class path in modules.json; exports written before the model/
package name `poolattn.st_module.PoolattnModule`, and sentence-transformers imports that path when it loads them.
"""

from __future__ import annotations

from poolattn.model.st_module import PoolattnModule

__all__ = ["PoolattnModule"]
