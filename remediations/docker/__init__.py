"""Docker Engine actions (``docker.restart``, ``docker.start``, ``docker.stop``) on aiodocker.

They reach the engine named by ``backends.docker.url`` (a unix socket or
tcp), through the one client the service opens for its lifetime.
"""
