package reference_test

import (
	"testing"

	"github.com/steergate/steergate/backend/backendtest"
	"github.com/steergate/steergate/backend/reference"
)

func TestConformance(t *testing.T) {
	backendtest.Run(t, reference.New("reference", reference.Options{}))
}
