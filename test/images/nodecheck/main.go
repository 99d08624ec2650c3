// Command nodecheck runs inside the test node's pods to show, through its log, what a pod sees:
//
//	nodecheck watch FILE...            print each file's content at start and whenever it changes
//	nodecheck apis [URL CA-FILE]...    call the pod's own cluster through the `kubernetes` Service
//	                                   with the pod's service-account token, then each other
//	                                   apiserver URL (its /version, verified with CA-FILE)
//
// It uses only the standard library, so its image stays one small static binary.
package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"
)

const saDir = "/var/run/secrets/kubernetes.io/serviceaccount"

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: nodecheck watch FILE... | nodecheck apis [URL CA-FILE]...")
		os.Exit(2)
	}
	var err error
	switch os.Args[1] {
	case "watch":
		err = watch(os.Args[2:])
	case "apis":
		err = apis(os.Args[2:])
	default:
		err = fmt.Errorf("unknown command %q", os.Args[1])
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "nodecheck:", err)
		os.Exit(1)
	}
}

// watch polls rather than using inotify: the kubelet swaps secret volumes by renaming a symlink,
// which a poll of the file's content sees the same way an application rereading it does.
func watch(files []string) error {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	last := map[string]string{}
	for {
		for _, f := range files {
			b, err := os.ReadFile(f)
			content := string(b)
			if err != nil {
				content = "error: " + err.Error()
			}
			if old, seen := last[f]; !seen || old != content {
				fmt.Printf("%s=%s\n", f, content)
				last[f] = content
			}
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(200 * time.Millisecond):
		}
	}
}

func apis(args []string) error {
	if len(args)%2 != 0 {
		return fmt.Errorf("apis wants URL CA-FILE pairs, got %q", args)
	}
	token, err := os.ReadFile(saDir + "/token")
	if err != nil {
		return err
	}
	host, port := os.Getenv("KUBERNETES_SERVICE_HOST"), os.Getenv("KUBERNETES_SERVICE_PORT")
	if host == "" {
		return fmt.Errorf("KUBERNETES_SERVICE_HOST is not set: the kubelet found no `kubernetes` Service")
	}
	own := "https://" + net.JoinHostPort(host, port)
	review := []byte(`{"apiVersion":"authentication.k8s.io/v1","kind":"SelfSubjectReview"}`)
	var who struct {
		Status struct {
			UserInfo struct {
				Username string `json:"username"`
			} `json:"userInfo"`
		} `json:"status"`
	}
	if err := call(http.MethodPost, own+"/apis/authentication.k8s.io/v1/selfsubjectreviews", saDir+"/ca.crt", string(token), review, &who); err != nil {
		return err
	}
	fmt.Printf("own cluster %s: authenticated as %s\n", own, who.Status.UserInfo.Username)
	for i := 0; i < len(args); i += 2 {
		var v struct {
			GitVersion string `json:"gitVersion"`
		}
		if err := call(http.MethodGet, args[i]+"/version", args[i+1], "", nil, &v); err != nil {
			return err
		}
		fmt.Printf("other cluster %s: version %s\n", args[i], v.GitVersion)
	}
	return nil
}

// call retries for a while: right after a pod starts, its network may still be settling.
func call(method, url, caFile, token string, body []byte, into any) error {
	ca, err := os.ReadFile(caFile)
	if err != nil {
		return err
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(ca) {
		return fmt.Errorf("%s holds no certificate", caFile)
	}
	client := &http.Client{
		Timeout:   5 * time.Second,
		Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}},
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		err = func() error {
			req, err := http.NewRequest(method, url, bytes.NewReader(body))
			if err != nil {
				return err
			}
			req.Header.Set("Content-Type", "application/json")
			if token != "" {
				req.Header.Set("Authorization", "Bearer "+token)
			}
			resp, err := client.Do(req)
			if err != nil {
				return err
			}
			defer resp.Body.Close()
			b, _ := io.ReadAll(resp.Body)
			if resp.StatusCode/100 != 2 {
				return fmt.Errorf("%s %s: %s: %s", method, url, resp.Status, b)
			}
			return json.Unmarshal(b, into)
		}()
		if err == nil || time.Now().After(deadline) {
			return err
		}
		fmt.Fprintf(os.Stderr, "retrying: %v\n", err)
		time.Sleep(time.Second)
	}
}
