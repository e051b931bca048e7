"""Layer 5 -- TensorRT: the only package that imports ``tensorrt`` (besides the plugins' TensorRT modules).

- ``runtimes.py``: finding TensorRT and its version;
- ``profile.py``: the optimization profile from the sidecar and ``--shapes``;
- ``build.py``: ``deploy build-engine`` (parse, configure, build, write);
- ``sidecar.py``: engine sidecars and whether an engine fits this machine;
- ``cache.py``: the engine cache key and folder;
- ``runner.py``: engines as a :class:`tdeploy.runtime.Runner`.

TensorRT is imported lazily, inside functions, so that everything else works without it.
May import: errors/artifact (0), plugins (1), models (2), runtime (3), export (4).
"""
