"""workerpool workers and a small client, in plain Python (standard library only).

Worker::

    from workerpool_worker import Worker, Fatal

    worker = Worker()

    @worker.task("text_processing")
    def count(ctx):
        ctx.progress(50, "counting")
        words = str(ctx.data.get("text", "")).split()
        if not words:
            raise Fatal("no text to count")
        return {"words": len(words)}

    worker.run()

Client::

    from workerpool_worker import Client

    record = Client("http://127.0.0.1:3002").execute("text_processing", {"text": "hi"})
"""

from .client import Client, ClientError
from .worker import Context, Fatal, Retryable, Worker

__all__ = ["Worker", "Context", "Retryable", "Fatal", "Client", "ClientError"]
__version__ = "0.1.0"
