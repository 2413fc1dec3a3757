//! `save` and `load`: oci-archive and docker-archive tarballs.
