// The upstream Gateway API conformance suite (sigs.k8s.io/gateway-api/conformance), pinned in go.mod and built
// into a test binary by scripts/test-deps.sh (`go test -c`). test/e2e/node/gateway-api-conformance.test.ts runs
// that binary against edgegate on the real node, with the suite's own flags (-gateway-class,
// -conformance-profiles, -supported-features, -report-output, ...). Nothing here changes what a test checks.
package conformance_test

import (
	"testing"

	"sigs.k8s.io/gateway-api/conformance"
)

func TestConformance(t *testing.T) {
	conformance.RunConformance(t)
}
