package main

import (
	"fmt"
	"log/slog"

	"github.com/steergate/steergate/configs"
	"github.com/steergate/steergate/rm"
	"github.com/steergate/steergate/rm/onnx"
)

// newONNXReward loads an ONNX reward model. An onnx_arm model is a token
// rewarder; as a sequence rewarder it scores nothing, so it is refused
// here until a strategy that uses it is configured.
func newONNXReward(name string, rc configs.Reward, cfg *configs.Config, closers *[]func()) (rm.Rewarder, error) {
	m := rc.Model
	c := onnx.Config{Name: name, Library: cfg.ONNX.Library, Model: m.Path, Tokenizer: m.Tokenizer, Format: m.Format,
		Objectives: rc.Objectives, MaxLength: m.MaxLength, Truncation: m.Truncation, PadID: m.PadID, MaxBatch: m.MaxBatch,
		MaxWait: m.MaxWait, Provider: m.Provider, DeviceID: m.DeviceID, MemLimit: m.MemoryLimit, Fallback: m.Fallback,
		Log: slog.Default().With("reward", name)}
	if rc.Type == configs.RewardONNXARM {
		a, err := onnx.NewARM(c)
		if err != nil {
			return nil, err
		}
		a.Close()
		return nil, fmt.Errorf("onnx_arm models score next tokens for token-level guidance, which no configured strategy uses yet")
	}
	r, err := onnx.NewRewarder(c)
	if err != nil {
		return nil, err
	}
	*closers = append(*closers, r.Close)
	return r, nil
}
