"""torch's SummaryWriter has no public way to write a prepared summary (TensorBoard's HParams records
with their `differs` marks) after Lightning's test stage closed the writer; Lightning itself reopens it
the same way (`_get_file_writer`)."""

from __future__ import annotations


def file_writer(writer):
    """The writer's event file writer, reopened if it was closed."""
    return writer._get_file_writer()
