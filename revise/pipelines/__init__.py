from .edit import ReviseEditOutput, ReviseEditPipeline, make_scheduler

__all__ = ["ReviseEditOutput", "ReviseEditPipeline", "make_scheduler"]
