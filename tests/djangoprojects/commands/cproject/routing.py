from cproject import consumers
from telex.django.routing import route
from telex.django.signals import worker_process_ready, worker_ready

channel_routing = [route("websocket.receive", consumers.echo, path=r"^/echo/$")]


def announce(signal, sender, **kwargs):
    """The tests count these lines: runworker sends each signal as Channels 1.x did."""
    print("signal", "worker_process_ready" if signal is worker_process_ready else "worker_ready", flush=True)


worker_process_ready.connect(announce)
worker_ready.connect(announce)
