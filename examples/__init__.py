"""The demo config and its sample WARCs, shipped with the package so `winnow demo` works from an
installed wheel."""
