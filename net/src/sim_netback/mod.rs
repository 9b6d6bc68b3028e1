//! The software Xen's network backend: dom0's netback serving sim netfronts,
//! and a learning bridge that forwards Ethernet frames between them.
