// Command k8sstrict validates rendered Kubernetes manifests offline: each document is decoded
// into the typed k8s.io/api object for its kind with unknown fields rejected, so misspelt or
// misplaced fields and wrong value types fail without downloading any schema.
package main

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/yaml"
)

type typeMeta struct {
	APIVersion string `json:"apiVersion"`
	Kind       string `json:"kind"`
}

// newObject returns an empty typed object for apiVersion/kind, or nil if unknown.
func newObject(t typeMeta) any {
	switch t.APIVersion + "/" + t.Kind {
	case "v1/Namespace":
		return &corev1.Namespace{}
	case "v1/ConfigMap":
		return &corev1.ConfigMap{}
	case "v1/Service":
		return &corev1.Service{}
	case "apps/v1/DaemonSet":
		return &appsv1.DaemonSet{}
	}
	return nil
}

func splitDocuments(data []byte) [][]byte {
	var docs [][]byte
	for _, part := range bytes.Split(data, []byte("\n---")) {
		if len(bytes.TrimSpace(part)) > 0 {
			docs = append(docs, part)
		}
	}
	return docs
}

func validate(doc []byte, skip map[string]bool) (string, error) {
	var t typeMeta
	if err := yaml.Unmarshal(doc, &t); err != nil {
		return "", err
	}
	if skip[t.Kind] {
		return "skipped " + t.Kind, nil
	}
	obj := newObject(t)
	if obj == nil {
		return "", fmt.Errorf("%s/%s: kind not known to this validator", t.APIVersion, t.Kind)
	}
	if err := yaml.UnmarshalStrict(doc, obj); err != nil {
		return "", fmt.Errorf("%s: %w", t.Kind, err)
	}
	if ds, ok := obj.(*appsv1.DaemonSet); ok {
		if err := checkDaemonSet(ds); err != nil {
			return "", err
		}
	}
	return "valid " + t.Kind, nil
}

func checkDaemonSet(ds *appsv1.DaemonSet) error {
	spec := ds.Spec.Template.Spec
	if ds.Name == "" || ds.Spec.Selector == nil || len(spec.Containers) == 0 {
		return errors.New("DaemonSet: name, selector and containers are required")
	}
	for k, v := range ds.Spec.Selector.MatchLabels {
		if ds.Spec.Template.Labels[k] != v {
			return fmt.Errorf("DaemonSet: selector %s=%s does not match the template", k, v)
		}
	}
	for _, c := range spec.Containers {
		if c.Name == "" || c.Image == "" {
			return errors.New("DaemonSet: every container needs a name and an image")
		}
	}
	return nil
}

func main() {
	skip := map[string]bool{}
	for _, arg := range os.Args[1:] {
		skip[strings.TrimPrefix(arg, "-skip=")] = strings.HasPrefix(arg, "-skip=")
	}
	data, err := io.ReadAll(os.Stdin)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	failed := false
	for _, doc := range splitDocuments(data) {
		result, err := validate(doc, skip)
		if err != nil {
			fmt.Fprintln(os.Stderr, "invalid:", err)
			failed = true
			continue
		}
		fmt.Println(result)
	}
	if failed {
		os.Exit(1)
	}
}
