package monitor

// Config is the `monitor:` section of the configuration file.
type Config struct {
	// BackupStorageThreshold is the backup file system usage percent that
	// raises backup_storage (default 85, the seed's storage_threshold).
	BackupStorageThreshold float64 `yaml:"backup_storage_threshold"`
}
