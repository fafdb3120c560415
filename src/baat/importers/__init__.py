"""Importers that read chat histories exported by other messengers.

Each importer is pure: it turns an export into typed records on the device and never touches
the network or Baat's stores. Storing the records is the caller's job.
"""
