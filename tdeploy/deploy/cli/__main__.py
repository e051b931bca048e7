"""``python -m tdeploy.deploy.cli``: the same as the ``deploy`` console script."""

from tdeploy.deploy.cli.main import main

main()
