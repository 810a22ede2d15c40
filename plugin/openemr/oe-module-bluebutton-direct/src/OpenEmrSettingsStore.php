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
