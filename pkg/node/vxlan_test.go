package node

import (
	"net"
	"testing"
)

func TestVTEP(t *testing.T) {
	for _, tc := range []struct{ cidr, ip, mac string }{
		{"10.88.0.0/24", "10.88.0.0", "0e:53:0a:58:00:00"},
		{"10.88.17.0/24", "10.88.17.0", "0e:53:0a:58:11:00"},
		{"172.16.4.128/25", "172.16.4.128", "0e:53:ac:10:04:80"},
	} {
		_, cidr, err := net.ParseCIDR(tc.cidr)
		if err != nil {
			t.Fatal(err)
		}
		ip, mac := vtep(cidr)
		if ip.String() != tc.ip || mac.String() != tc.mac {
			t.Errorf("vtep(%s) = %s %s, want %s %s", tc.cidr, ip, mac, tc.ip, tc.mac)
		}
		// Locally administered, unicast: never a vendor's or a group's.
		if mac[0]&0x02 == 0 || mac[0]&0x01 != 0 {
			t.Errorf("vtep MAC %s is not a locally administered unicast address", mac)
		}
	}
}

func TestValidateVXLANMode(t *testing.T) {
	for mode, ok := range map[string]bool{"auto": true, "always": true, "never": true, "": false, "on": false} {
		if err := ValidateVXLANMode(mode); (err == nil) != ok {
			t.Errorf("ValidateVXLANMode(%q) = %v", mode, err)
		}
	}
}
