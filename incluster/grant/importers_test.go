package grant

import "testing"

func TestAllowed(t *testing.T) {
	tests := []struct {
		name        string
		annotations map[string]string
		cluster, ns string
		want        bool
		wantErr     bool
	}{
		{name: "no annotation: unrestricted", annotations: nil, cluster: "a", ns: "x", want: true},
		{name: "listed namespace", annotations: ann("a/x,a/y,c/*"), cluster: "a", ns: "y", want: true},
		{name: "unlisted namespace", annotations: ann("a/x,a/y,c/*"), cluster: "a", ns: "z", want: false},
		{name: "any namespace of c", annotations: ann("a/x,a/y,c/*"), cluster: "c", ns: "z", want: true},
		{name: "unlisted cluster", annotations: ann("a/x,a/y,c/*"), cluster: "d", ns: "x", want: false},
		{name: "namespace of another cluster", annotations: ann("a/x"), cluster: "ax", ns: "x", want: false},
		{name: "spaces and empty entries", annotations: ann(" a/x , ,a/y,"), cluster: "a", ns: "y", want: true},
		{name: "empty value allows nobody", annotations: ann(""), cluster: "a", ns: "x", want: false},
		{name: "missing namespace", annotations: ann("a"), cluster: "a", ns: "x", wantErr: true},
		{name: "invalid cluster", annotations: ann("A_1/x"), cluster: "a", ns: "x", wantErr: true},
		{name: "wildcard cluster is not a thing", annotations: ann("*/x"), cluster: "a", ns: "x", wantErr: true},
		{name: "invalid namespace", annotations: ann("a/x/y"), cluster: "a", ns: "x", wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Allowed(tt.annotations, tt.cluster, tt.ns)
			if (err != nil) != tt.wantErr {
				t.Fatalf("error = %v, wantErr %v", err, tt.wantErr)
			}
			if got != tt.want {
				t.Errorf("Allowed = %v, want %v", got, tt.want)
			}
		})
	}
}

func TestAllowedImportersString(t *testing.T) {
	tests := []struct {
		name string
		in   string
		add  []string
		want string
	}{
		{name: "canonical order, duplicates dropped", in: "c/*,a/y,a/x,a/y", want: "a/x,a/y,c/*"},
		{name: "with more namespaces", in: "a/x", add: []string{"z", "x"}, want: "a/x,a/z"},
		{name: "from nothing", in: "", add: []string{"x"}, want: "a/x"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			list, err := ParseAllowedImporters(tt.in)
			if err != nil {
				t.Fatal(err)
			}
			if got := list.With("a", tt.add...).String(); got != tt.want {
				t.Errorf("got %q, want %q", got, tt.want)
			}
		})
	}
}

func ann(v string) map[string]string { return map[string]string{AllowedImportersAnnotation: v} }
