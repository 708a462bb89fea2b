"""The only places that use other libraries' private names, one small module per library; each is
pinned by tests/test_compat.py, so an upgrade that moves one fails there first."""
