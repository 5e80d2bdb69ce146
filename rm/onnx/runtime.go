package onnx

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"

	ort "github.com/yalue/onnxruntime_go"
)

// LibraryEnv names the environment variable with the library's path.
const LibraryEnv = "ONNXRUNTIME_LIB"

// RuntimeVersion is the ONNX Runtime release the project fetches.
const RuntimeVersion = "1.24.3"

// DefaultLibrary is where `make` puts the library: the cache folder.
func DefaultLibrary() string {
	dir := os.Getenv("STEERGATE_DOWNLOADS")
	if dir == "" {
		home, _ := os.UserHomeDir()
		dir = filepath.Join(home, ".cache", "steergate")
	}
	return filepath.Join(dir, "onnxruntime", RuntimeVersion, "libonnxruntime.so.1")
}

// LibraryPath resolves the library: the configured path, then
// ONNXRUNTIME_LIB, then the cache folder.
func LibraryPath(configured string) string {
	if configured != "" {
		return configured
	}
	if p := os.Getenv(LibraryEnv); p != "" {
		return p
	}
	return DefaultLibrary()
}

var (
	initMu   sync.Mutex
	initPath string
)

// Init loads the ONNX Runtime library once per process. A second call with
// another path is an error: the runtime cannot be swapped.
func Init(path string) error {
	initMu.Lock()
	defer initMu.Unlock()
	if _, err := os.Stat(path); err != nil {
		return fmt.Errorf("ONNX Runtime library %s: %w (set onnx.library or %s; `make test` fetches it into %s)",
			path, errors.Unwrap(err), LibraryEnv, filepath.Dir(DefaultLibrary()))
	}
	if ort.IsInitialized() {
		if path != initPath {
			return fmt.Errorf("ONNX Runtime is already loaded from %s; cannot also load %s", initPath, path)
		}
		return nil
	}
	ort.SetSharedLibraryPath(path)
	if err := ort.InitializeEnvironment(ort.WithLogLevelError()); err != nil {
		return fmt.Errorf("ONNX Runtime library %s could not be loaded (Steergate needs ONNX Runtime 1.24 or later): %w", path, err)
	}
	initPath = path
	return nil
}
