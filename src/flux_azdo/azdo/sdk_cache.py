"""Where the `azure-devops` SDK keeps its location cache: in our cache folder, never in the user's home.

The SDK caches the answers of `OPTIONS <org>/_apis` and `_apis/ResourceAreas` on disk (12 h), in a folder it
picks once, at import time, and creates right then (`~/.azure-devops/python-sdk/cache`). A tool that is run in
pipelines and containers should not leave that behind, and should keep it where its other cached files are.
"""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

#: The SDK reads this variable once, when `azure.devops._file_cache` is first imported.
CACHE_ENVIRONMENT_VARIABLE = "AZURE_DEVOPS_CACHE_DIR"
_FILE_CACHE_MODULE = "azure.devops._file_cache"


def default_cache_dir() -> Path:
    """`AZURE_DEVOPS_CACHE_DIR` when set (the SDK's own knob), else `<user cache>/flux-azdo/azure-devops`."""
    configured = os.environ.get(CACHE_ENVIRONMENT_VARIABLE)
    if configured:
        return Path(configured)
    import platformdirs

    return Path(platformdirs.user_cache_dir("flux-azdo")) / "azure-devops"


def use_sdk_cache(directory: Path) -> None:
    """Make the SDK keep its location cache (`options.json`, `resources.json`) in `directory`.

    The SDK computes its cache folder once, when `azure.devops._file_cache` is imported: from
    `AZURE_DEVOPS_CACHE_DIR`, else `~/.azure-devops/python-sdk/cache`, which it creates right then. Two steps
    make the choice ours whatever was imported before:

    1. if the SDK is not imported yet, it is imported here with the variable pointing at `directory` (and the
       variable restored afterwards, so child processes such as `az` see the user's environment unchanged):
       the import then never creates `~/.azure-devops`;
    2. the two module-level `FileCache` objects are re-pointed in place (`file_name`, in-memory data dropped).
       In place matters: `client.py` and `connection.py` of the SDK imported them by name, so rebinding the
       module attributes would not reach them.

    The cache is process-wide: the last client created decides where it lives. A folder that cannot be created
    (a read-only home) means no disk cache rather than a failure.
    """
    directory = Path(directory)
    try:
        directory.mkdir(parents=True, exist_ok=True)
        usable = True
    except OSError:
        usable = False  # no disk cache then (an empty file name); the SDK only needs a folder that exists
    if _FILE_CACHE_MODULE not in sys.modules:
        previous = os.environ.get(CACHE_ENVIRONMENT_VARIABLE)
        os.environ[CACHE_ENVIRONMENT_VARIABLE] = str(directory if usable else tempfile.gettempdir())
        try:
            import azure.devops._file_cache  # noqa: F401
        finally:
            if previous is None:
                os.environ.pop(CACHE_ENVIRONMENT_VARIABLE, None)
            else:
                os.environ[CACHE_ENVIRONMENT_VARIABLE] = previous
    module = sys.modules[_FILE_CACHE_MODULE]
    for name, cache in (("options", module.OPTIONS_CACHE), ("resources", module.RESOURCE_CACHE)):
        file_name = str(directory / f"{name}.json") if usable else ""
        if cache.file_name != file_name:
            cache.file_name = file_name
            cache.data = {}
            cache.initial_load_occurred = False
