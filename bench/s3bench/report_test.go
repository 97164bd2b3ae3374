package main

import (
	"io"
	"strings"
	"testing"
)

func TestMergeReport(t *testing.T) {
	run := func(name string) string { return runStart + "\n### " + name + "\n\n| table |\n" + runEnd + "\n" }
	tests := []struct {
		name     string
		old      string
		latest   string   // the run under "Latest run"
		previous []string // the runs under "Previous runs", in order
		notes    string   // text that must survive
	}{
		{name: "new file", old: "", latest: "first"},
		{name: "second run", old: mergeReport("", run("first")), latest: "second", previous: []string{"first"}},
		{
			name:     "third run keeps history newest first",
			old:      mergeReport(mergeReport("", run("first")), run("second")),
			latest:   "third",
			previous: []string{"second", "first"},
		},
		{
			name:     "notes survive",
			old:      strings.Replace(mergeReport("", run("first")), latestHead, "## Profile notes\n\nGET spends its time in md5.\n\n"+latestHead, 1),
			latest:   "second",
			previous: []string{"first"},
			notes:    "GET spends its time in md5.",
		},
		{name: "foreign file becomes notes", old: "# Old numbers\n\nPUT was slow.\n", latest: "first", notes: "PUT was slow."},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := mergeReport(tc.old, run(tc.latest))
			if strings.Count(got, introStart) != 1 || strings.Count(got, latestHead) != 1 || strings.Count(got, prevHead) != 1 {
				t.Fatalf("want one introduction and one of each heading:\n%s", got)
			}
			latest, previous, _ := strings.Cut(got[strings.Index(got, latestHead):], prevHead)
			if !strings.Contains(latest, "### "+tc.latest+"\n") || strings.Count(latest, runStart) != 1 {
				t.Errorf("latest run is not %q:\n%s", tc.latest, latest)
			}
			var names []string
			for _, l := range strings.Split(previous, "\n") {
				if name, ok := strings.CutPrefix(l, "### "); ok {
					names = append(names, name)
				}
			}
			if strings.Join(names, ",") != strings.Join(tc.previous, ",") {
				t.Errorf("previous runs = %q, want %q", names, tc.previous)
			}
			if tc.notes != "" && strings.Count(got, tc.notes) != 1 {
				t.Errorf("notes %q not kept once:\n%s", tc.notes, got)
			}
			if again := mergeReport(got, run("next")); !strings.Contains(again, "### "+tc.latest+"\n") {
				t.Errorf("merging again lost %q", tc.latest)
			}
		})
	}
}

func TestNum(t *testing.T) {
	for v, want := range map[float64]string{0: "0", 999.4: "999", 999.5: "1,000", 1234567: "1,234,567"} {
		if got := num(v); got != want {
			t.Errorf("num(%v) = %q, want %q", v, got, want)
		}
	}
}

func TestSlug(t *testing.T) {
	if got, want := slug("LIST 100 keys (ListObjectsV2), 16 clients"), "list-100-keys-listobjectsv2-16-clients"; got != want {
		t.Errorf("slug = %q, want %q", got, want)
	}
}

func TestPayload(t *testing.T) {
	src := []byte("0123456789")
	for _, size := range []int64{0, 3, 10, 25} {
		got, err := io.ReadAll(&payload{src: src, left: size})
		if err != nil || int64(len(got)) != size || !strings.HasPrefix(strings.Repeat("0123456789", 3), string(got)) {
			t.Errorf("payload of %d: %q, %v", size, got, err)
		}
	}
}
