package metadata

import (
	"encoding/json"
	"strings"
	"time"
)

// identityDocument renders /dynamic/instance-identity/document as EC2 does:
// its field order, two-space indent, " : " separators, null for absent
// kernel and ramdisk and for the product code lists.
func identityDocument(in Instance) []byte {
	arch := in.Architecture
	if arch == "" {
		arch = "x86_64"
	}
	str := func(s string) string {
		b, _ := json.Marshal(s) // a string always marshals
		return string(b)
	}
	orNull := func(s string) string {
		if s == "" {
			return "null"
		}
		return str(s)
	}
	fields := []struct{ key, value string }{
		{"accountId", str(in.AccountID)},
		{"architecture", str(arch)},
		{"availabilityZone", str(in.Zone)},
		{"billingProducts", "null"},
		{"devpayProductCodes", "null"},
		{"marketplaceProductCodes", "null"},
		{"imageId", str(in.ImageID)},
		{"instanceId", str(in.ID)},
		{"instanceType", str(in.InstanceType)},
		{"kernelId", orNull(in.KernelID)},
		{"pendingTime", str(in.LaunchTime.UTC().Format(time.RFC3339))},
		{"privateIp", orNull(addr(in.PrivateIP))},
		{"ramdiskId", orNull(in.RamdiskID)},
		{"region", str(in.Region)},
		{"version", str("2017-09-30")},
	}
	var b strings.Builder
	b.WriteString("{\n")
	for i, f := range fields {
		b.WriteString("  " + str(f.key) + " : " + f.value)
		if i < len(fields)-1 {
			b.WriteString(",")
		}
		b.WriteString("\n")
	}
	b.WriteString("}")
	return []byte(b.String())
}
