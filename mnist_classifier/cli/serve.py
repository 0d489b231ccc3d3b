"""``mnist-serve``: a web page to draw a digit (or upload a photo) and see what the model answers.

    mnist-serve --model_fn model.pth [--host 127.0.0.1] [--port 8000] [--allowed_hosts a,b] [--docs]

Binds to this machine only unless ``--host`` says otherwise, and answers only requests whose Host
header is an allowed name. With ``model.onnx`` beside the model file (``mnist-export``), onnxruntime
answers once it agrees with the model; PyTorch otherwise. The API's schema is at ``/openapi.json``.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

import torch

from ..errors import UserError
from ..options import option
from . import ModelFileOptions, OneLineParser, options_parser, parsed_options, run_cli


@dataclass
class ServeOptions(ModelFileOptions):
    host: str = option("127.0.0.1", "the address to listen on, IPv6 with or without brackets")
    port: int = option(8000, "the port", low=1, high=65535)
    allowed_hosts: str | None = option(None, "the Host names answered, separated by commas ('*' any, "
                                       "'*.example.com' its subdomains; no ports); others get 400, against DNS "
                                       "rebinding (default: the --host, with localhost and 127.0.0.1 when it is a "
                                       "loopback address, and this machine's names when it is 0.0.0.0 or ::, where "
                                       "any IP address is answered too)")
    docs: bool = option(False, "serve the API pages /docs and /redoc (they load swagger-ui and redoc from a CDN)")
    export: bool = option(True, "answer with an ONNX export where one lies beside the model file (--no-export: "
                          "with PyTorch always)")


def build_parser() -> OneLineParser:
    return options_parser(ServeOptions, "mnist-serve", __doc__)


def main(argv: list[str] | None = None) -> None:
    def action():
        args = parsed_options(ServeOptions, build_parser().parse_args(argv))
        try:
            from ..inference import server
        except ImportError as e:
            raise UserError(f"mnist-serve needs the 'serve' extra: pip install 'mnist-classifier[serve]' ({e})") from e
        host = server.unbracketed(args.host)
        allowed = server.allowed_hosts(args.allowed_hosts, host)
        any_address = host in server.WILDCARD_HOSTS
        # One picture at a time is a tiny computation: a second thread would only compete with the
        # server's own work of reading requests and writing answers.
        torch.set_num_threads(1)
        app = server.create_app(Path(args.model_fn), use_export=args.export, docs=args.docs,
                                say=lambda note: print(f"mnist-serve: {note}", file=sys.stderr))
        sock = server.listen(host, args.port)  # a port in use is one line, before "Serving"
        hosts = ", ".join(allowed) + (" or any address" if any_address else "")
        print(f"Serving {args.model_fn} on http://{server.bracketed(host)}:{args.port}/ for Host {hosts} "
              "(Ctrl-C stops)", flush=True)
        server.build_server(app, allowed, any_address=any_address).run(sockets=[sock])

    run_cli("mnist-serve", action)


if __name__ == "__main__":
    main()
