"""Operations: caspianctl, containers, monitoring and Kubernetes manifests."""
