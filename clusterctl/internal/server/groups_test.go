package server

import (
	"context"
	"io"
	"net/http"
	"reflect"
	"strings"
	"testing"

	"github.com/koala-cloud/koala/pkg/api"
)

func TestPutGroups(t *testing.T) {
	e := newEnv(t, nil)
	ctx := context.Background()
	if gs, received := e.srv.cluster.Groups(); received || gs != nil {
		t.Fatalf("a new cluster has groups: %v %v", gs, received)
	}
	if g := e.srv.net.groups(); g.Received || g.Set != nil {
		t.Fatalf("a new cluster enforces groups: %+v", g)
	}

	set := []api.Group{
		{ID: "sg-web", Owner: "000000000001",
			Ingress: []api.GroupRule{{Protocol: "tcp", FromPort: 80, ToPort: 80, CIDRs: []string{"0.0.0.0/0"}},
				{Protocol: "icmp", FromPort: -1, ToPort: -1, SourceGroups: []string{"sg-admin"}}},
			Egress: []api.GroupRule{{Protocol: "all", FromPort: -1, ToPort: -1, CIDRs: []string{"0.0.0.0/0"}}}},
		{ID: "sg-admin", Owner: "000000000001"},
	}
	if err := e.client.PutGroups(ctx, api.GroupsRequest{Groups: set}); err != nil {
		t.Fatal(err)
	}
	check := func(when string) {
		t.Helper()
		gs, received := e.srv.cluster.Groups()
		if !received || !reflect.DeepEqual(gs, set) {
			t.Errorf("%s: groups %+v (received %v), want %+v", when, gs, received, set)
		}
		if g := e.srv.net.groups(); !g.Received || len(g.Set) != 2 || g.Set[0].ID != "sg-web" || len(g.Set[0].Ingress) != 2 {
			t.Errorf("%s: network gets %+v", when, g)
		}
	}
	check("after put")
	e.restart()
	check("after restart")

	for _, tc := range []struct {
		name string
		g    api.Group
	}{
		{"bad cidr", api.Group{ID: "sg-x", Ingress: []api.GroupRule{{Protocol: "tcp", FromPort: 1, ToPort: 1, CIDRs: []string{"10.0.0.300/8"}}}}},
		{"ipv6 cidr", api.Group{ID: "sg-x", Ingress: []api.GroupRule{{Protocol: "tcp", FromPort: 1, ToPort: 1, CIDRs: []string{"::/0"}}}}},
		{"protocol", api.Group{ID: "sg-x", Egress: []api.GroupRule{{Protocol: "gre", CIDRs: []string{"0.0.0.0/0"}}}}},
		{"port", api.Group{ID: "sg-x", Ingress: []api.GroupRule{{Protocol: "udp", FromPort: 1, ToPort: 70000}}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := e.client.PutGroups(ctx, api.GroupsRequest{Groups: []api.Group{tc.g}})
			if status, code := callCode(err); status != http.StatusBadRequest || code != "InvalidParameterValue" {
				t.Errorf("PutGroups = %v, want 400 InvalidParameterValue", err)
			}
		})
	}

	req, _ := http.NewRequest(http.MethodPut, "http://"+e.srv.Addr()+api.PathGroups, strings.NewReader(`{"groups":[]}`))
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if res.StatusCode != http.StatusForbidden || !strings.Contains(string(body), "AuthFailure") {
		t.Errorf("unsigned put: %d %s", res.StatusCode, body)
	}
	check("after the rejected puts")

	if err := e.client.PutGroups(ctx, api.GroupsRequest{}); err != nil {
		t.Fatal(err)
	}
	e.restart()
	if gs, received := e.srv.cluster.Groups(); !received || len(gs) != 0 {
		t.Errorf("an empty set: groups %v, received %v; want none, received", gs, received)
	}
}
