//go:build e2e

package e2e

import (
	"encoding/base64"
	"strings"
	"testing"
	"time"
)

// TestInstancesAPI drives the instance actions through the aws CLI on a
// stack whose nodes run the fake hypervisor driver (picked by their
// configuration): the API's shapes, filters, errors and isolation, fast.
func TestInstancesAPI(t *testing.T) {
	t.Parallel()
	require(t, fileAt(awsBin))
	st := startInstStack(t, stackSpec{
		driver: "fake", policies: []string{"GREEDY"}, nodes: 1,
		capacity: capacityConfig{Cores: 64, MemoryMiB: 65536, DiskGiB: 1000},
		// A node that stops answering stays UP for a while, so that a
		// launch is placed on it and must time out.
		heartbeat: "20s", launchTimeout: "10s",
	})
	cli := st.cli(t)
	other := newAWSCLI(t, st.c.endpoint, st.c.createAccount(t, "stranger"))

	userData := "#!/bin/sh\necho hello from user-data\n"
	var out struct {
		ReservationID string `json:"ReservationId"`
		OwnerID       string `json:"OwnerId"`
		Instances     []cliInstance
	}
	cli.json(t, &out, "ec2", "run-instances", "--image-id", st.images.machine, "--count", "7", "--instance-type", "c1.medium",
		"--user-data", userData, "--client-token", "tok-1",
		"--tag-specifications", "ResourceType=instance,Tags=[{Key=Name,Value=web},{Key=team,Value=blue}]")
	if len(out.Instances) != 7 || !strings.HasPrefix(out.ReservationID, "r-") || out.OwnerID != st.user.AccountID {
		t.Fatalf("run-instances: %s", jsonString(out))
	}
	ids := make([]string, len(out.Instances))
	for i, in := range out.Instances {
		ids[i] = in.InstanceID
	}
	t.Run("client token", func(t *testing.T) {
		var again struct {
			ReservationID string `json:"ReservationId"`
		}
		cli.json(t, &again, "ec2", "run-instances", "--image-id", st.images.machine, "--count", "7", "--instance-type", "c1.medium",
			"--user-data", userData, "--client-token", "tok-1",
			"--tag-specifications", "ResourceType=instance,Tags=[{Key=Name,Value=web},{Key=team,Value=blue}]")
		if again.ReservationID != out.ReservationID {
			t.Errorf("a retried run-instances made reservation %s, want %s", again.ReservationID, out.ReservationID)
		}
		wantCLIError(t, cli, "IdempotentParameterMismatch", "ec2", "run-instances", "--image-id", st.images.machine,
			"--count", "1", "--client-token", "tok-1")
	})
	cli.run(t, append([]string{"ec2", "wait", "instance-running", "--instance-ids"}, ids...)...)

	t.Run("describe, filters and pages", func(t *testing.T) {
		var page cliReservations
		cli.json(t, &page, "ec2", "describe-instances", "--page-size", "5")
		n := 0
		for _, r := range page.Reservations {
			n += len(r.Instances)
		}
		if n != 7 {
			t.Errorf("describe-instances in pages of 5 listed %d instances, want 7", n)
		}
		for filter, want := range map[string]int{
			"Name=instance-state-name,Values=running":         7,
			"Name=tag:Name,Values=web":                        7,
			"Name=tag:team,Values=red":                        0,
			"Name=instance-type,Values=c1.*":                  7,
			"Name=instance-type,Values=m1.small":              0,
			"Name=availability-zone,Values=us-east-1a":        7,
			"Name=reservation-id,Values=" + out.ReservationID: 7,
			"Name=instance-id,Values=" + ids[3]:               1,
			"Name=image-id,Values=" + st.images.machine:       7,
			"Name=launch-index,Values=2":                      1,
		} {
			var got cliReservations
			cli.json(t, &got, "ec2", "describe-instances", "--filters", filter)
			n := 0
			for _, r := range got.Reservations {
				n += len(r.Instances)
			}
			if n != want {
				t.Errorf("--filters %s: %d instances, want %d", filter, n, want)
			}
		}
		wantCLIError(t, cli, "InvalidParameterValue", "ec2", "describe-instances", "--filters", "Name=no-such-filter,Values=x")
		wantCLIError(t, cli, "InvalidInstanceID.Malformed", "ec2", "describe-instances", "--instance-ids", "i-nothex")
		wantCLIError(t, cli, "InvalidInstanceID.NotFound", "ec2", "describe-instances", "--instance-ids", "i-0123456789abcdef0")
	})

	t.Run("status", func(t *testing.T) {
		var res struct {
			InstanceStatuses []struct {
				InstanceID     string `json:"InstanceId"`
				InstanceState  struct{ Name string }
				InstanceStatus struct{ Status string }
			}
		}
		cli.json(t, &res, "ec2", "describe-instance-status", "--instance-ids", ids[0])
		if len(res.InstanceStatuses) != 1 || res.InstanceStatuses[0].InstanceStatus.Status != "ok" {
			t.Errorf("describe-instance-status: %s", jsonString(res))
		}
	})

	t.Run("console", func(t *testing.T) {
		var res struct{ Output string }
		cli.json(t, &res, "ec2", "get-console-output", "--instance-id", ids[0])
		if !strings.Contains(res.Output, "koala-demo: instance "+ids[0]+" is up") {
			t.Errorf("console output %q", res.Output)
		}
	})

	t.Run("attributes, stop, modify, start, reboot", func(t *testing.T) {
		id := ids[1]
		var ud struct{ UserData struct{ Value string } }
		cli.json(t, &ud, "ec2", "describe-instance-attribute", "--instance-id", id, "--attribute", "userData")
		if dec, _ := base64.StdEncoding.DecodeString(ud.UserData.Value); string(dec) != userData {
			t.Errorf("userData attribute %q, want %q", dec, userData)
		}
		wantCLIError(t, cli, "IncorrectInstanceState", "ec2", "modify-instance-attribute", "--instance-id", id,
			"--instance-type", "Value=m1.large")
		cli.run(t, "ec2", "reboot-instances", "--instance-ids", id)
		cli.run(t, "ec2", "stop-instances", "--instance-ids", id)
		cli.run(t, "ec2", "wait", "instance-stopped", "--instance-ids", id)
		cli.run(t, "ec2", "modify-instance-attribute", "--instance-id", id, "--instance-type", "Value=m1.large")
		cli.run(t, "ec2", "modify-instance-attribute", "--instance-id", id, "--attribute", "userData", "--value", "bmV3")
		wantCLIError(t, cli, "InvalidInstanceAttributeValue", "ec2", "modify-instance-attribute", "--instance-id", id,
			"--instance-type", "Value=t9.huge")
		cli.run(t, "ec2", "start-instances", "--instance-ids", id)
		cli.run(t, "ec2", "wait", "instance-running", "--instance-ids", id)
		got := st.describe(t, id)[id]
		if got.InstanceType != "m1.large" {
			t.Errorf("after modify and start: type %s", got.InstanceType)
		}
		// Starting a running instance changes nothing, as on EC2.
		var started struct {
			StartingInstances []struct {
				CurrentState  struct{ Name string }
				PreviousState struct{ Name string }
			}
		}
		cli.json(t, &started, "ec2", "start-instances", "--instance-ids", ids[2])
		if c := started.StartingInstances[0]; c.PreviousState.Name != "running" || c.CurrentState.Name != "running" {
			t.Errorf("starting a running instance: %s", jsonString(started))
		}
	})

	t.Run("bad input", func(t *testing.T) {
		big := strings.Repeat("x", 16<<10+1)
		for _, tc := range []struct {
			code string
			args []string
		}{
			{"InvalidAMIID.NotFound", []string{"--image-id", "ami-0123456789abcdef0"}},
			{"InvalidAMIID.Malformed", []string{"--image-id", "image-1"}},
			{"InvalidParameterValue", []string{"--image-id", st.images.machine, "--instance-type", "t9.huge"}},
			{"InvalidParameterValue", []string{"--image-id", st.images.kernel}},
			{"InvalidParameterValue", []string{"--image-id", st.images.machine, "--placement", "AvailabilityZone=mars-1a"}},
			{"InvalidParameterValue", []string{"--image-id", st.images.machine, "--user-data", big}},
			{"InvalidParameterValue", []string{"--image-id", st.images.machine, "--count", "3:2"}},
			{"InvalidKeyPair.NotFound", []string{"--image-id", st.images.machine, "--key-name", "nope"}},
			{"InvalidGroup.NotFound", []string{"--image-id", st.images.machine, "--security-groups", "nope"}},
			{"DryRunOperation", []string{"--image-id", st.images.machine, "--dry-run"}},
		} {
			wantCLIError(t, cli, tc.code, append([]string{"ec2", "run-instances"}, tc.args...)...)
		}
		if n := len(st.describe(t)); n != 7 {
			t.Errorf("after refused launches the account has %d instances, want 7", n)
		}
	})

	t.Run("isolation", func(t *testing.T) {
		var none cliReservations
		other.json(t, &none, "ec2", "describe-instances")
		if len(none.Reservations) != 0 {
			t.Errorf("another account sees %s", jsonString(none))
		}
		for _, verb := range []string{"terminate-instances", "stop-instances", "reboot-instances"} {
			wantCLIError(t, other, "InvalidInstanceID.NotFound", "ec2", verb, "--instance-ids", ids[0])
		}
		wantCLIError(t, other, "InvalidInstanceID.NotFound", "ec2", "get-console-output", "--instance-id", ids[0])
		wantCLIError(t, other, "InvalidAMIID.NotFound", "ec2", "run-instances", "--image-id", st.images.machine)
	})

	t.Run("terminate", func(t *testing.T) {
		cli.run(t, append([]string{"ec2", "terminate-instances", "--instance-ids"}, ids...)...)
		cli.run(t, append([]string{"ec2", "wait", "instance-terminated", "--instance-ids"}, ids...)...)
		got := st.describe(t, ids[0])[ids[0]]
		if got.StateReason == nil || got.StateReason.Code != "Client.UserInitiatedShutdown" {
			t.Errorf("terminated instance's state reason: %s", jsonString(got))
		}
		var again struct {
			TerminatingInstances []struct {
				CurrentState  struct{ Name string }
				PreviousState struct{ Name string }
			}
		}
		cli.json(t, &again, "ec2", "terminate-instances", "--instance-ids", ids[0])
		wantCLIError(t, cli, "IncorrectInstanceState", "ec2", "start-instances", "--instance-ids", ids[0])
		wantCLIError(t, cli, "IncorrectInstanceState", "ec2", "stop-instances", "--instance-ids", ids[0])
		if c := again.TerminatingInstances[0]; c.PreviousState.Name != "terminated" || c.CurrentState.Name != "terminated" {
			t.Errorf("terminating again: %s", jsonString(again))
		}
	})

	t.Run("an unreachable node ends in terminated with a reason", func(t *testing.T) {
		n := st.clusters[0].nodes[0]
		n.stop()
		defer func() {
			if err := n.start(); err != nil {
				t.Fatal(err)
			}
		}()
		ins := st.runInstances(t)
		id := ins[0].InstanceID
		waitFor(t, 3*time.Minute, id+" terminated", func() (bool, string) {
			in := st.describe(t, id)[id]
			return in.State.Name == "terminated", jsonString(in)
		})
		in := st.describe(t, id)[id]
		if in.StateReason == nil || in.StateReason.Code != "Server.InternalError" || !strings.Contains(in.StateReason.Message, "node") {
			t.Errorf("state reason %s", jsonString(in.StateReason))
		}
	})
}
