// Command gen writes the tiny test reward models (ONNX) and their
// tokenizer into rm/rmtest/testdata: go run ./rm/rmtest/gen
package main

import (
	"fmt"
	"os"

	"github.com/steergate/steergate/rm/rmtest"
)

func main() {
	dir := rmtest.Dir
	if len(os.Args) > 1 {
		dir = os.Args[1]
	}
	if err := rmtest.Write(dir); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}
