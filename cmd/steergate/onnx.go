package main

import (
	"fmt"

	"github.com/steergate/steergate/configs"
	"github.com/steergate/steergate/rm"
)

func newONNXReward(name string, rc configs.Reward, cfg *configs.Config, closers *[]func()) (rm.Rewarder, error) {
	return nil, fmt.Errorf("onnx rewards are not available in this build")
}
