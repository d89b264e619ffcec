"""A Kubernetes-API spoke simulator: enough of the API server, scheduler, kubelets and Job controller for the
dispatcher (through the official kubernetes client) and kubectl to treat it as a real cluster."""
