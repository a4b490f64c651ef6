// Package deploy holds no code: its tests check the deployment artefacts
// beside it (Dockerfile, compose, Kubernetes, systemd, Prometheus and Grafana
// files) with what this machine can run, so a broken manifest fails CI
// instead of a user's first deploy.
package deploy
