/* The inner guest's side of the usb-mode data round trip (e2e scenario usb_roundtrip).
 *
 * A nested TCG guest cannot boot an operating system within the e2e's time, so the guest's
 * program is this boot sector. The firmware (SeaBIOS) loads it from the passed-through stick
 * and gives it the stick as its boot drive, reached through SeaBIOS's own USB mass-storage
 * driver over the guest's xHCI controller: every byte below travels the USB path that usbvm
 * set up. From the job the host wrote to sector 1 it reads the sectors of the host's file,
 * inverts every byte (so what comes back is the guest's own data, not an echo), writes them
 * over the sectors of a second file, and prints the outcome on COM1.
 *
 * Sector 1 (the job): "USBVMRT1", src LBA (u32), dst LBA (u32), count (u16, 1..64 sectors),
 * 6 bytes padding, then a NUL-terminated marker (at most 64 bytes) that the guest prints.
 * Output: "E2E-RT-DONE <marker>" or "E2E-RT-FAIL <what> <BIOS status in hex>".
 *
 * Assembled by tests/e2e/run: as --32, then ld -Ttext 0x7c00 --oformat binary. It must fit
 * in the 440 bytes before the MBR's disk signature and partition table. */
    .code16
    /* the job's fields where it is read to */
    .set job_src, 0x0608
    .set job_dst, 0x060c
    .set job_count, 0x0610
    .set job_marker, 0x0618
    .text
    .globl _start
_start:
    cli
    xor %ax, %ax
    mov %ax, %ds
    mov %ax, %es
    mov %ax, %ss
    mov $0x7c00, %sp
    sti
    cld
    mov %dl, drive

    /* the job, to 0000:0600 */
    movw $1, dap_count
    movw $0x0600, dap_off
    movw $0, dap_seg
    movl $1, dap_lba
    mov $0x42, %ah
    mov $msg_job, %bp
    call disk
    mov $0x0600, %si
    mov $magic, %di
    mov $8, %cx
    repe cmpsb
    jne bad_job
    mov job_count, %ax
    test %ax, %ax
    jz bad_job
    cmp $64, %ax
    ja bad_job

    /* the host's file, to 1000:0000 */
    mov job_src, %eax
    mov %eax, dap_lba
    mov job_count, %ax
    mov %ax, dap_count
    movw $0, dap_off
    movw $0x1000, dap_seg
    mov $0x42, %ah
    mov $msg_read, %bp
    call disk

    /* every byte inverted, a word at a time */
    push %es
    mov $0x1000, %bx
    mov %bx, %es
    xor %di, %di
    mov job_count, %cx
    shl $8, %cx
1:  notw %es:(%di)
    add $2, %di
    loop 1b
    pop %es

    /* over the second file's sectors */
    mov job_dst, %eax
    mov %eax, dap_lba
    mov job_count, %ax
    mov %ax, dap_count
    movw $0, dap_off
    movw $0x1000, dap_seg
    mov $0x4300, %ax
    mov $msg_write, %bp
    call disk

    mov $msg_done, %si
    call print
    mov $job_marker, %si
    call print
    jmp finish

bad_job:
    mov $msg_fail, %si
    call print
    mov $msg_badjob, %si
    call print
    jmp finish

/* int 13h extended call AH (AL) on the boot drive with the DAP; on failure, prints what
 * (BP) and the status and stops. */
disk:
    mov $dap, %si
    mov drive, %dl
    int $0x13
    jc 2f
    ret
2:  mov %ah, %bl
    mov $msg_fail, %si
    call print
    mov %bp, %si
    call print
    mov %bl, %al
    shr $4, %al
    call hexdigit
    mov %bl, %al
    call hexdigit
    jmp finish

hexdigit:
    and $0x0f, %al
    add $'0', %al
    cmp $'9', %al
    jbe 3f
    add $7, %al
3:  mov $0x3f8, %dx
    out %al, %dx
    ret

/* DS:SI, NUL-terminated, to COM1 */
print:
    mov $0x3f8, %dx
4:  lodsb
    test %al, %al
    jz 5f
    out %al, %dx
    jmp 4b
5:  ret

finish:
    mov $msg_crlf, %si
    call print
6:  cli
    hlt
    jmp 6b

magic:      .ascii "USBVMRT1"
msg_done:   .asciz "E2E-RT-DONE "
msg_fail:   .asciz "E2E-RT-FAIL "
msg_job:    .asciz "job "
msg_read:   .asciz "read "
msg_write:  .asciz "write "
msg_badjob: .asciz "bad-job"
msg_crlf:   .asciz "\r\n"
drive:      .byte 0
    .balign 4
dap:        .byte 16, 0
dap_count:  .word 0
dap_off:    .word 0
dap_seg:    .word 0
dap_lba:    .long 0, 0
