"""Deployment definitions (prefect.yaml, Dockerfile, docker-compose), shipped with the package so
`winnow deploy` works from an installed wheel."""
