"""Kubernetes actions on kubernetes-asyncio: the ``kubectl rollout``/``scale`` runbook steps.

They reach the cluster named by ``backends.kubernetes`` (a kubeconfig and
context, or the pod's service account) through the one API client the
service opens for its lifetime. Each docstring names the RBAC it needs.
"""
