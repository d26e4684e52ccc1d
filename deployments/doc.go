// Package deployments holds no Go code: it is the home of the Dockerfile,
// compose.yaml, nginx.conf, Kubernetes manifests (k8s/), Prometheus alert
// rules (prometheus/) and the Grafana dashboard (grafana/). Its tests parse
// and cross-check those files, because Docker cannot run in CI here; see
// docs/scaling.md for what is and is not exercised.
package deployments
