package dra

import (
	"fmt"
	"os"
	"strconv"
	"strings"

	resourcev1 "k8s.io/api/resource/v1"
)

// MaxGPUs is the most GPUs one node publishes: one ResourceSlice holds at
// most 128 devices.
const MaxGPUs = 128

const simulatedForm = "<count>x<model>-<memory>GB, e.g. 4xA100-80GB"

// ParseSimulated parses a simulated inventory: comma- or newline-separated
// entries of the form <count>x<model>-<memory>GB, for example "4xA100-80GB"
// or "2xA100-80GB,1xT4-16GB". The model attribute is "<model>-<memory>GB"
// ("A100-80GB"); the memory is <memory> GiB. Text after '#' on a line is a
// comment. GPUs are numbered in order; their UUIDs are GPU-sim-<node>-<i>.
func ParseSimulated(spec, nodeName string) ([]GPU, error) {
	if nodeName == "" {
		nodeName = "node"
	}
	var gpus []GPU
	for _, line := range strings.Split(spec, "\n") {
		if i := strings.IndexByte(line, '#'); i >= 0 {
			line = line[:i]
		}
		for _, token := range strings.Split(line, ",") {
			token = strings.TrimSpace(token)
			if token == "" {
				continue
			}
			count, model, memory, err := parseSimulatedEntry(token)
			if err != nil {
				return nil, err
			}
			// Not len+count: a huge count would overflow past the check.
			if count > MaxGPUs-len(gpus) {
				return nil, fmt.Errorf("simulated GPU inventory: %q brings the total above %d GPUs per node", token, MaxGPUs)
			}
			for range count {
				i := len(gpus)
				gpus = append(gpus, GPU{
					Index:       i,
					UUID:        fmt.Sprintf("GPU-sim-%s-%d", nodeName, i),
					Model:       model,
					MemoryBytes: memory,
					Backend:     BackendSimulated,
					Minor:       -1,
				})
			}
		}
	}
	if len(gpus) == 0 {
		return nil, fmt.Errorf("simulated GPU inventory %q lists no GPUs: want entries of the form %s", spec, simulatedForm)
	}
	return gpus, nil
}

func parseSimulatedEntry(token string) (count int, model string, memory int64, err error) {
	bad := func(why string) error {
		return fmt.Errorf("bad simulated GPU entry %q: %s; want %s", token, why, simulatedForm)
	}
	countText, rest, ok := strings.Cut(token, "x")
	if !ok {
		return 0, "", 0, bad(`no "x" between count and model`)
	}
	count, err = strconv.Atoi(countText)
	if err != nil || count < 1 {
		return 0, "", 0, bad(fmt.Sprintf("count %q is not a positive whole number", countText))
	}
	dash := strings.LastIndexByte(rest, '-')
	if dash < 0 {
		return 0, "", 0, bad(`no "-<memory>GB" after the model`)
	}
	name, memText := rest[:dash], rest[dash+1:]
	if name == "" {
		return 0, "", 0, bad("empty model name")
	}
	for _, r := range name {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_' || r == '.') {
			return 0, "", 0, bad(fmt.Sprintf("model %q may hold only letters, digits, '-', '_' and '.'", name))
		}
	}
	digits, ok := strings.CutSuffix(strings.ToUpper(memText), "GB")
	if !ok {
		return 0, "", 0, bad(fmt.Sprintf("memory %q does not end in GB", memText))
	}
	gb, err := strconv.Atoi(digits)
	if err != nil || gb < 1 || gb > 1<<20 {
		return 0, "", 0, bad(fmt.Sprintf("memory %q is not a positive whole number of GB", memText))
	}
	model = name + "-" + digits + "GB"
	// The model is a ResourceSlice attribute, whose values the API server
	// caps.
	if len(model) > resourcev1.DeviceAttributeMaxValueLength {
		return 0, "", 0, bad(fmt.Sprintf("model %q is longer than %d characters", model, resourcev1.DeviceAttributeMaxValueLength))
	}
	return count, model, int64(gb) << 30, nil
}

func readSimulatedFile(path string) (string, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return "", fmt.Errorf("simulated GPU inventory: %w", err)
	}
	return string(data), nil
}
