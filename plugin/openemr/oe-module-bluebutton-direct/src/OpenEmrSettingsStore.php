<?php

/**
 * SettingsStore on OpenEMR's `globals` table (gl_name, gl_index, gl_value), the same rows OpenEMR loads into
 * $GLOBALS on every request. No table of our own is needed (no table.sql).
 *
 * @license Apache-2.0
 */

namespace OpenEMR\Modules\BlueButtonDirect;

final class OpenEmrSettingsStore implements SettingsStore
{
    public function get(string $key): string
    {
        $row = \sqlQuery('SELECT `gl_value` FROM `globals` WHERE `gl_name` = ? AND `gl_index` = 0', [$key]);
        return is_array($row) ? (string) ($row['gl_value'] ?? '') : '';
    }

    public function has(string $key): bool
    {
        return is_array(\sqlQuery('SELECT `gl_name` FROM `globals` WHERE `gl_name` = ? AND `gl_index` = 0', [$key]));
    }

    /**
     * Write the module's settings that have no row yet (a fresh install: OpenEMR creates the rows of a
     * module's settings only when someone saves the globals page), so presets and defaults take effect and the
     * globals page shows them. An "encrypted" setting is stored encrypted, as the globals page would.
     *
     * @param array<string, string> $values key => value
     * @param array<string, string> $types key => GlobalSetting data type
     * @return list<string> the keys written
     */
    public function writeMissing(array $values, array $types = []): array
    {
        $written = [];
        foreach ($values as $key => $value) {
            if ($this->has($key)) {
                continue;
            }
            if (($types[$key] ?? '') === 'encrypted' && $value !== '' && class_exists('OpenEMR\\Common\\Crypto\\CryptoGen')) {
                $value = (string) (new \OpenEMR\Common\Crypto\CryptoGen())->encryptStandard($value);
            }
            $this->set($key, $value);
            $written[] = $key;
        }
        return $written;
    }

    public function set(string $key, string $value): void
    {
        $exists = \sqlQuery('SELECT `gl_name` FROM `globals` WHERE `gl_name` = ? AND `gl_index` = 0', [$key]);
        if (is_array($exists)) {
            \sqlStatement('UPDATE `globals` SET `gl_value` = ? WHERE `gl_name` = ? AND `gl_index` = 0', [$value, $key]);
        } else {
            \sqlStatement('INSERT INTO `globals` (`gl_name`, `gl_index`, `gl_value`) VALUES (?, 0, ?)', [$key, $value]);
        }
        $GLOBALS[$key] = $value;
    }
}
