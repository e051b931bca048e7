"""CLI commands that live beside the feature they drive (registered in tdeploy.deploy.cli)."""
