"""A real OpenStack Placement (openstack-placement from PyPI) on sqlite, for tests/fleet.

Run with the OpenStack venv's python (scripts/openstack-venv.sh): `python placement_server.py
CONF`. It creates the database (sync_on_startup), serves the WSGI app on 127.0.0.1 at a free port,
prints the port on one line and serves until killed. Not imported by layoutd or the tests."""

import sys
from wsgiref.simple_server import WSGIRequestHandler, make_server

from oslo_config import cfg
from placement import conf as placement_conf
from placement import db_api, deploy


class Quiet(WSGIRequestHandler):
    def log_message(self, *args: object) -> None:
        pass


def main() -> None:
    conf = cfg.ConfigOpts()
    placement_conf.register_opts(conf)
    conf([], default_config_files=[sys.argv[1]])
    db_api.configure(conf)
    app = deploy.loadapp(conf)
    server = make_server("127.0.0.1", 0, app, handler_class=Quiet)
    print(server.server_port, flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
